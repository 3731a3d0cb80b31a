export { GoogleGenAI, Modality } from "@google/genai";
